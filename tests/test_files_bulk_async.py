"""The awaitable bulk helpers (src/py_io_uring/files_async.py): aread_files,
aiter_read_files, acopyfile, acopy2, acopytree on asyncio and trio.  Data
byte for byte, os's and shutil's errors with their paths, progress on the
event loop's thread, and a cancelled await that returns only once nothing
is in flight, open or running (descriptors and threads counted)."""

import asyncio
import gc
import hashlib
import os
import shutil
import stat
import threading
import time

import pytest

import py_io_uring
from py_io_uring import acopy2, acopyfile, acopytree, aiter_read_files, aread_files

from file_helpers import make_files, spy_batches


def open_fds():
    return set(os.listdir("/proc/self/fd"))


@pytest.fixture
def clean():
    """Fails the test when it leaves a descriptor open or a thread running."""
    fds, threads = open_fds(), threading.active_count()
    yield
    assert threading.active_count() == threads
    assert open_fds() == fds


def make_tree(root, nfiles, size=4096):
    datas = {}
    for i in range(nfiles):
        sub = root / ("d%02d" % (i % 7)) / ("s" if i % 2 else "")
        sub.mkdir(parents=True, exist_ok=True)
        p = sub / ("f%05d" % i)
        d = os.urandom(size + i % 300)
        p.write_bytes(d)
        os.chmod(str(p), 0o640 if i % 3 else 0o600)
        datas[os.path.relpath(str(p), str(root))] = d
    return datas


def fifo(tmp_path):
    p = str(tmp_path / "fifo")
    os.mkfifo(p)
    return p


# ------------------------------------------------------------- aread_files

def test_aread_files_reads_every_file_in_order_with_progress_on_the_loop(tmp_path, clean):
    paths, datas = make_files(tmp_path, [0, 1, 4096, 70000, 200000, 3 << 20] * 5)
    calls = []

    async def main():
        loop_thread = threading.get_ident()

        def progress(*counts):
            calls.append((threading.get_ident() == loop_thread,) + counts)
        return await aread_files(paths, depth=4, progress=progress)

    assert asyncio.run(main()) == datas
    assert calls and all(on_loop for on_loop, *_ in calls)
    # the latest counts are delivered before the await returns
    assert calls[-1][1:] == (sum(map(len, datas)), None, len(paths), len(paths))


def test_aread_files_direct_and_an_empty_list(tmp_path, clean):
    paths, datas = make_files(tmp_path, [10, 100000, 5])

    async def main():
        return await aread_files(paths, direct=True), await aread_files([])
    assert asyncio.run(main()) == (datas, [])


def test_aread_files_raises_os_errors_with_the_path(tmp_path, clean):
    paths, datas = make_files(tmp_path, [100] * 10)
    missing = str(tmp_path / "missing")

    async def main():
        with pytest.raises(FileNotFoundError) as e:
            await aread_files(paths[:5] + [missing] + paths[5:])
        assert e.value.filename == missing
        got = await aread_files([paths[0], missing], errors="return")
        assert got[0] == datas[0]
        assert isinstance(got[1], FileNotFoundError) and got[1].filename == missing
        with pytest.raises(ValueError):
            await aread_files(paths, errors="ignore")
        with pytest.raises(ValueError):
            await aread_files(paths, depth=0)
    asyncio.run(main())


def test_a_cancelled_aread_files_stops_even_an_open_that_blocks(tmp_path, clean):
    # an open of a FIFO without a writer never completes by itself: the
    # helper's bounded wait sees the cancellation, cancels the open and
    # drains, and only then does the await end
    paths, _ = make_files(tmp_path, [100] * 3)

    async def main():
        task = asyncio.ensure_future(aread_files(paths + [fifo(tmp_path)]))
        await asyncio.sleep(0.1)
        assert not task.done()
        t0 = time.monotonic()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return time.monotonic() - t0
    assert asyncio.run(main()) < 5


def test_a_progress_that_raises_ends_the_call_with_its_error(tmp_path, clean):
    paths, _ = make_files(tmp_path, [5000] * 300)

    def progress(*counts):
        raise ZeroDivisionError("from progress")

    async def main():
        with pytest.raises(ZeroDivisionError, match="from progress"):
            await aread_files(paths * 20, depth=8, progress=progress)
    asyncio.run(main())


def test_aread_files_and_copies_on_trio(tmp_path, clean):
    trio = pytest.importorskip("trio")
    paths, datas = make_files(tmp_path, [10, 100000, 5])
    dst = str(tmp_path / "copy")
    out = {}

    async def main():
        out["read"] = await aread_files(paths)
        await acopyfile(paths[1], dst)
        with trio.move_on_after(0.1) as scope:
            await aread_files(paths + [fifo(tmp_path)])
        out["cancelled"] = scope.cancelled_caught
    trio.run(main)
    assert out == {"read": datas, "cancelled": True}
    with open(dst, "rb") as f:
        assert f.read() == datas[1]


def test_aread_files_on_anyio_and_on_py_io_urings_loop(tmp_path, clean):
    anyio = pytest.importorskip("anyio")
    paths, datas = make_files(tmp_path, [1, 300000])

    async def main():
        return await aread_files(paths)
    assert anyio.run(main) == datas
    assert py_io_uring.run(main()) == datas


def test_aread_files_outside_an_event_loop_is_a_runtime_error(tmp_path):
    coro = aread_files([])
    with pytest.raises(RuntimeError):
        coro.send(None)
    coro.close()


def test_ahash_files_on_asyncio_and_trio(tmp_path, clean):
    paths, datas = make_files(tmp_path, [0, 5000, 300000] * 4)
    want = [hashlib.sha1(d).hexdigest() for d in datas]
    loop_thread = []

    async def main():
        hs = await py_io_uring.ahash_files(paths, "sha1", depth=2,
                                           progress=lambda *a: loop_thread.append(threading.get_ident()))
        return [h.hexdigest() for h in hs]
    assert asyncio.run(main()) == want
    assert set(loop_thread) == {threading.get_ident()}
    trio = pytest.importorskip("trio")

    async def tmain():
        got = await py_io_uring.ahash_files(paths + [str(tmp_path / "nope")], errors="return")
        return got
    got = trio.run(tmain)
    assert [h.hexdigest() for h in got[:-1]] == [hashlib.sha256(d).hexdigest() for d in datas]
    assert isinstance(got[-1], FileNotFoundError)


# -------------------------------------------------------- aiter_read_files

def test_aiter_read_files_yields_every_file_as_it_completes(tmp_path, clean):
    paths, datas = make_files(tmp_path, [0, 7, 4096, 300000] * 10)

    async def main():
        got = {}
        async for path, data in aiter_read_files(paths, depth=3):
            got[path] = data
        return got
    assert asyncio.run(main()) == dict(zip(paths, datas))


def test_aiter_read_files_closed_early_drains_and_closes(tmp_path, clean):
    paths, datas = make_files(tmp_path, [20000] * 50)
    want = dict(zip(paths, datas))

    async def main():
        n = 0
        async with aiter_read_files(paths * 10, depth=4) as it:
            async for path, data in it:
                assert data == want[path]
                n += 1
                if n == 5:
                    break
        # closed: no more items
        assert [x async for x in it] == []
        return n
    assert asyncio.run(main()) == 5


def test_aiter_read_files_dropped_unclosed_stops_its_thread(tmp_path):
    paths, _ = make_files(tmp_path, [20000] * 20)
    threads = threading.active_count()

    async def main():
        it = aiter_read_files(paths * 50, depth=2)
        await it.__anext__()
        del it
        gc.collect()
        deadline = time.monotonic() + 10
        while threading.active_count() > threads and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
    asyncio.run(main())
    assert threading.active_count() == threads


def test_aiter_read_files_reads_one_batch_ahead_in_order(tmp_path, clean, monkeypatch):
    # whole batches go to the loop, in the paths' order; while the loop
    # does not take, the thread reads one batch past the one handed over
    read = spy_batches(monkeypatch)
    paths, datas = make_files(tmp_path, [i % 300 for i in range(500)])

    async def main():
        it = aiter_read_files(paths, depth=4)
        got = [await it.__anext__()]
        await asyncio.sleep(0.3)            # the thread: as far as it may go
        ahead = list(read)
        got += [x async for x in it]
        return got, ahead
    got, ahead = asyncio.run(main())
    assert got == list(zip(paths, datas))
    assert ahead == [4, 8]                  # handed over, and the next
    assert sum(read) == 500


def test_aiter_read_files_closed_while_an_open_blocks(tmp_path, clean):
    # a batch whose open of a FIFO never completes: aclose() stops it
    # through read_many()'s bounded wait and returns once it has drained
    paths, datas = make_files(tmp_path, [100] * 3)
    p = fifo(tmp_path)
    rescue = threading.Timer(20, lambda: os.close(os.open(p, os.O_WRONLY | os.O_NONBLOCK)))
    rescue.start()          # (a broken stop would hang: this ends the open)

    async def main():
        it = aiter_read_files(paths + [p], depth=2)
        got = [await it.__anext__() for _ in range(2)]    # the first batch
        nxt = asyncio.ensure_future(it.__anext__())
        await asyncio.sleep(0.3)
        assert not nxt.done()   # the batch with the FIFO is blocked
        t0 = time.monotonic()
        nxt.cancel()
        await it.aclose()
        return got, time.monotonic() - t0
    try:
        got, took = asyncio.run(main())
    finally:
        rescue.cancel()
        rescue.join()
    assert got == list(zip(paths[:2], datas[:2]))
    assert took < 5


def test_aiter_read_files_raises_the_files_error(tmp_path, clean):
    paths, datas = make_files(tmp_path, [100] * 3)
    missing = str(tmp_path / "missing")

    async def main():
        got = []
        with pytest.raises(FileNotFoundError) as e:
            async for path, data in aiter_read_files(paths + [missing]):
                got.append(path)
        assert e.value.filename == missing
        returned = [x async for x in aiter_read_files([missing], errors="return")]
        assert returned[0][0] == missing and isinstance(returned[0][1], FileNotFoundError)
    asyncio.run(main())
    with pytest.raises(ValueError):
        aiter_read_files(paths, depth=0)


# -------------------------------------------------------------------- copies

def test_acopyfile_and_acopy2_copy_data_with_progress(tmp_path, clean):
    src = tmp_path / "src"
    data = os.urandom(3 << 20 | 123)
    src.write_bytes(data)
    (tmp_path / "copies").mkdir()
    calls = []

    async def main():
        a = await acopyfile(str(src), str(tmp_path / "a"), progress=lambda *c: calls.append(c))
        # a folder: src's name in it, as shutil.copy2
        b = await acopy2(str(src), str(tmp_path / "copies"))
        with pytest.raises(shutil.SameFileError):
            await acopyfile(str(src), str(src))
        return a, b
    a, b = asyncio.run(main())
    assert a == str(tmp_path / "a")
    assert b == str(tmp_path / "copies" / "src")
    for p in (a, b):
        with open(p, "rb") as f:
            assert f.read() == data
    assert calls[-1] == (len(data), len(data), 1, 1)


def test_acopy2_keeps_mode_and_times(tmp_path, clean):
    src = tmp_path / "src"
    src.write_bytes(b"x" * 100000)
    os.chmod(str(src), 0o604)
    os.utime(str(src), ns=(1_600_000_000_123_456_789, 1_500_000_000_987_654_321))
    dst = str(tmp_path / "dst")
    assert asyncio.run(acopy2(str(src), dst)) == dst
    a, b = os.stat(str(src)), os.stat(dst)
    assert stat.S_IMODE(b.st_mode) == 0o604
    assert b.st_mtime_ns == a.st_mtime_ns
    with pytest.raises(FileNotFoundError) as e:
        asyncio.run(acopy2(str(tmp_path / "nope"), dst))
    assert e.value.filename == str(tmp_path / "nope")


def test_acopytree_copies_as_shutil_does(tmp_path, clean):
    src = tmp_path / "src"
    datas = make_tree(src, 60)
    (src / "link").symlink_to("d00")
    dst = tmp_path / "dst"
    calls = []
    out = asyncio.run(acopytree(str(src), str(dst), symlinks=True,
                                ignore=shutil.ignore_patterns("f00003"),
                                progress=lambda *c: calls.append(c)))
    assert out == str(dst)
    for rel, d in datas.items():
        p = dst / rel
        if rel.endswith("f00003"):
            assert not p.exists()
            continue
        assert p.read_bytes() == d
        assert os.stat(str(p)).st_mode == os.stat(str(src / rel)).st_mode
        assert os.stat(str(p)).st_mtime_ns == os.stat(str(src / rel)).st_mtime_ns
    assert os.readlink(str(dst / "link")) == "d00"
    assert calls[-1][2] == calls[-1][3] == len(datas) - 1
    with pytest.raises(FileExistsError):
        asyncio.run(acopytree(str(src), str(dst)))


def test_a_cancelled_acopytree_stops_between_rounds_and_closes_everything(tmp_path, clean):
    src = tmp_path / "src"
    make_tree(src, 2000, size=2048)
    dst = tmp_path / "dst"

    async def main():
        task = None

        def progress(*counts):
            task.cancel()       # on the loop's thread, at the first counts
        task = asyncio.ensure_future(acopytree(str(src), str(dst), depth=8, progress=progress))
        with pytest.raises(asyncio.CancelledError):
            await task
    asyncio.run(main())
    copied = sum(len(f) for _, _, f in os.walk(str(dst)))
    assert copied < 2000


def test_a_cancelled_acopyfile_stops_its_copy_thread(tmp_path, clean, monkeypatch):
    # a large file goes by copy_file_range in a worker thread (slowed here
    # to 64 KiB a millisecond): a cancel stops it at its next chunk, and the
    # await returns once that thread has ended and the files are closed
    import time
    from py_io_uring import files
    monkeypatch.setattr(files, "_KERNEL_CHUNK", 64 << 10)
    real = os.copy_file_range

    def slow(*args):
        time.sleep(0.001)
        return real(*args)
    monkeypatch.setattr(os, "copy_file_range", slow)
    src = tmp_path / "src"
    size = 64 << 20
    src.write_bytes(os.urandom(1 << 20) * (size >> 20))
    dst = tmp_path / "dst"
    seen = []

    async def main():
        task = None

        def progress(*counts):
            seen.append(counts)
            task.cancel()
        task = asyncio.ensure_future(acopyfile(str(src), str(dst), progress=progress))
        with pytest.raises(asyncio.CancelledError):
            await task
    asyncio.run(main())
    assert seen and os.stat(str(dst)).st_size < size
    assert not [t for t in threading.enumerate() if t.name.startswith("py_io_uring-copy")]


def test_a_cancelled_direct_acopyfile_drains_its_buffers_and_stops(tmp_path, clean):
    # o_direct=True: the kernel reads and writes the helper's own aligned
    # buffers; a cancel stops the copy at its next round, and the await
    # returns only once those are drained and freed, the files closed
    src = tmp_path / "src"
    size = 128 << 20
    with open(str(src), "wb") as f:
        for _ in range(size >> 20):
            f.write(os.urandom(1 << 20))
    dst = tmp_path / "dst"
    seen = []

    async def main():
        task = None

        def progress(*counts):
            seen.append(counts)
            task.cancel()       # on the loop's thread, at the first counts
        task = asyncio.ensure_future(acopyfile(str(src), str(dst), depth=4, o_direct=True,
                                               progress=progress))
        with pytest.raises(asyncio.CancelledError):
            await task
    asyncio.run(main())
    assert seen and seen[0][0] < size
    assert os.stat(str(dst)).st_size < size   # stopped partway

"""Files for the bulk helpers' tests (test_files.py, test_bulk_read.py,
test_files_bulk_async.py), a spy on the batches they read, and for the
async file tests (test_aos.py, test_tempfile.py, test_afile_whole.py,
test_apath.py) the run of a coroutine on one backend and the check that
no descriptor is left open."""

import asyncio
import os
import threading

import pytest

# the async libraries the file calls run on: asyncio's own loop,
# py_io_uring's EventLoop, trio
BACKENDS = ["asyncio", "eventloop", "trio"]


def run_on(backend, main):
    """main() run to its end on backend (trio's test skipped without trio)."""
    if backend == "asyncio":
        return asyncio.run(main())
    if backend == "eventloop":
        import py_io_uring
        return py_io_uring.run(main())
    trio = pytest.importorskip("trio")
    return trio.run(main)


@pytest.fixture
def fds():
    """Fails the test when it leaves a descriptor open (a module takes it
    with `from file_helpers import fds`)."""
    before = set(os.listdir("/proc/self/fd"))
    yield
    assert set(os.listdir("/proc/self/fd")) == before


@pytest.fixture
def blocked_fifo(tmp_path):
    """A FIFO without a writer, whose open blocks, and a writer after 8 s so
    that a broken build's test ends too (a test asserts it ended sooner)."""
    path = str(tmp_path / "fifo")
    os.mkfifo(path)

    def unblock():
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:     # ENXIO: no reader (any more)
            pass
    rescue = threading.Timer(8, unblock)
    rescue.start()
    yield path
    rescue.cancel()
    rescue.join()


def make_files(folder, sizes):
    """One file of random bytes per size in folder (a pathlib.Path), named
    f000, f001, ...: (their paths as str, their data)."""
    paths, datas = [], []
    for i, n in enumerate(sizes):
        p = folder / ("f%03d" % i)
        d = os.urandom(n)
        p.write_bytes(d)
        paths.append(str(p))
        datas.append(d)
    return paths, datas


def spy_batches(monkeypatch):
    """The batches iter_read_files() (and the helpers on it) hands
    read_many(), by their lengths, in a list that grows as they come."""
    import py_io_uring

    files = py_io_uring.files
    real = files._read_many
    sizes = []

    def spy(chunk, depth, **kw):
        sizes.append(len(chunk))
        return real(chunk, depth, **kw)
    monkeypatch.setattr(files, "_read_many", spy)
    return sizes

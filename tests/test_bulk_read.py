"""read_many() (src/ops/bulk_read.c), the C loop under files.read_files():
data byte for byte at every size around its reads, files read to the end
whatever their size says (procfs), os's errors with the path, and after
every failure path no descriptor open, no direct slot left holding a file
(every open the kernel made is closed: inotify counts them) and nothing in
flight."""

import ctypes
import ctypes.util
import errno
import os
import select
import signal
import struct
import threading
import time

import pytest

import py_io_uring
from py_io_uring import read_many, read_files

from file_helpers import blocked_fifo, make_files  # noqa: F401  (a fixture)

FIRST = 64 * 1024       # each of the chain's two reads (bulk_read.c)


def open_fds():
    return set(os.listdir("/proc/self/fd"))


@pytest.fixture
def fds():
    before = open_fds()
    yield
    assert open_fds() == before


class OpenCloseCounter(object):
    """inotify on a folder: opens and closes of the files in it, direct
    descriptors included (the kernel's fsnotify sees every open file)."""
    IN_OPEN, IN_CLOSE_NOWRITE, IN_CLOSE_WRITE = 0x20, 0x10, 0x08

    def __init__(self, folder):
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        self.fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if self.fd < 0:
            pytest.skip("inotify_init1: %s" % os.strerror(ctypes.get_errno()))
        mask = self.IN_OPEN | self.IN_CLOSE_NOWRITE | self.IN_CLOSE_WRITE
        if libc.inotify_add_watch(self.fd, os.fsencode(str(folder)), mask) < 0:
            os.close(self.fd)
            pytest.skip("inotify_add_watch: %s" % os.strerror(ctypes.get_errno()))
        self.opens = self.closes = 0

    def _take(self):
        while True:
            try:
                buf = os.read(self.fd, 65536)
            except BlockingIOError:
                return
            pos = 0
            while pos < len(buf):
                wd, mask, cookie, n = struct.unpack_from("iIII", buf, pos)
                pos += 16 + n
                if mask & self.IN_OPEN:
                    self.opens += 1
                if mask & (self.IN_CLOSE_NOWRITE | self.IN_CLOSE_WRITE):
                    self.closes += 1

    def settle(self, timeout=2.0):
        """(opens, closes) once every open is closed, or at the timeout."""
        end = time.monotonic() + timeout
        while True:
            self._take()
            if self.opens == self.closes or time.monotonic() > end:
                return self.opens, self.closes
            select.select([self.fd], [], [], 0.05)

    def reset(self):
        """Count from here (the test's own files are written)."""
        self.settle()
        self.opens = self.closes = 0

    def close(self):
        os.close(self.fd)


@pytest.fixture
def opens(tmp_path, fds):
    c = OpenCloseCounter(tmp_path)
    yield c
    c.close()


SIZES = [0, 1, 4095, 4096, FIRST - 1, FIRST, FIRST + 1, 2 * FIRST - 1, 2 * FIRST,
         2 * FIRST + 1, 6 * FIRST, 6 * FIRST + 7, (1 << 20), (2 << 20) - 1, 2 << 20,
         (2 << 20) + 1, 5 * (1 << 20) + 3]


@pytest.mark.parametrize("depth", [1, 2, 3, 64])
def test_data_byte_for_byte_every_size(tmp_path, opens, depth):
    paths, datas = make_files(tmp_path, SIZES)
    opens.reset()
    out = read_many(paths, depth)
    assert [len(o) for o in out] == [len(d) for d in datas]
    assert out == datas
    assert all(type(o) is bytes for o in out)
    o, c = opens.settle()
    assert o == c == len(paths)


def test_paths_of_every_kind_and_order(tmp_path, fds):
    paths, datas = make_files(tmp_path, [10, 20, 30])
    given = [paths[0], os.fsencode(paths[1]), tmp_path / "f002", paths[0]]
    assert read_many(iter(given)) == [datas[0], datas[1], datas[2], datas[0]]
    assert read_many([]) == []


def test_procfs_read_to_the_end(fds):
    # sized 0, and handed out a page or so per read: the length is what a
    # loop of reads to EOF gets, not what the first read gave
    out = read_many(["/proc/self/status", "/proc/self/mountinfo", "/proc/version"])
    with open("/proc/version", "rb") as f:
        assert out[2] == f.read()
    assert out[0].startswith(b"Name:") and out[0].endswith(b"\n")
    assert out[1].endswith(b"\n") and len(out[1]) > 0


def test_smaps_longer_than_two_reads(fds):
    # /proc/self/smaps is far longer than 2 x 64 KiB in a Python process and
    # comes a page at a time: every line must be whole
    data = read_many(["/proc/self/smaps"])[0]
    if len(data) <= 2 * FIRST:
        pytest.skip("smaps only %d bytes here" % len(data))
    assert data.endswith(b"\n")
    assert data.count(b"Size:") > 10


def test_procfs_file_past_the_first_room_grows(fds):
    # smaps is sized 0 (stat() gives no room): its bytes grow from 2 MiB by
    # doubling.  Thousands of mappings (alternate protections, so they do
    # not merge) make it longer than 2 MiB.
    import mmap
    maps = [mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | (mmap.PROT_WRITE if i % 2 else 0))
            for i in range(6000)]
    try:
        data = read_many(["/proc/self/smaps"])[0]
    finally:
        for m in maps:
            m.close()
    if len(data) <= (2 << 20):
        pytest.skip("smaps only %d bytes here" % len(data))
    assert data.endswith(b"\n")
    assert data.count(b"\nVmFlags:") >= 6000


def test_file_growing_while_read_is_read_as_far_as_it_is(tmp_path, fds):
    # the room stat() gave runs out when the file grows after it: the
    # bytes grow (a realloc with nothing in flight), and what was read is
    # a prefix of the file, at least as long as when the call began
    p = tmp_path / "grow"
    chunk = os.urandom(FIRST)
    p.write_bytes(chunk * 3)
    stop = threading.Event()

    def writer():
        with open(str(p), "ab", buffering=0) as f:
            for _ in range(400):
                if stop.is_set():
                    break
                f.write(chunk)

    t = threading.Thread(target=writer)
    t.start()
    try:
        outs = [read_many([str(p)] * 4, 2) for _ in range(10)]
    finally:
        stop.set()
        t.join()
    final = p.read_bytes()
    for out in outs:
        for data in out:
            assert len(data) >= 3 * FIRST
            assert final[:len(data)] == data


def test_file_that_grows_after_its_size_is_known(tmp_path, fds):
    # the reads go on while they return data: what is there when the last
    # read runs is read
    p = tmp_path / "grow"
    p.write_bytes(b"a" * (3 * FIRST))
    assert read_many([str(p)]) == [b"a" * (3 * FIRST)]


def test_missing_file_raises_with_path_after_drain(tmp_path, opens):
    paths, datas = make_files(tmp_path, [4096] * 40)
    opens.reset()
    missing = str(tmp_path / "nope")
    with pytest.raises(FileNotFoundError) as ei:
        read_many(paths[:20] + [missing] + paths[20:], 8)
    assert ei.value.errno == errno.ENOENT
    assert ei.value.filename == missing
    o, c = opens.settle()
    assert o == c > 0


def test_directory_raises_is_a_directory(tmp_path, opens):
    paths, datas = make_files(tmp_path, [100])
    opens.reset()
    sub = tmp_path / "sub"
    sub.mkdir()
    with pytest.raises(IsADirectoryError) as ei:
        read_many([paths[0], str(sub)])
    assert ei.value.filename == str(sub)
    o, c = opens.settle()
    assert o == c > 0


def test_path_given_as_pathlike_is_the_error_filename(tmp_path, fds):
    missing = tmp_path / "nope"
    with pytest.raises(FileNotFoundError) as ei:
        read_many([missing])
    assert ei.value.filename is missing


def test_errors_return_puts_exceptions_in_place(tmp_path, opens):
    paths, datas = make_files(tmp_path, [5, 3 * FIRST])
    opens.reset()
    sub = tmp_path / "sub"
    sub.mkdir()
    missing = str(tmp_path / "nope")
    out = read_many([paths[0], missing, str(sub), paths[1]], 2, errors="return")
    assert out[0] == datas[0] and out[3] == datas[1]
    assert isinstance(out[1], FileNotFoundError) and out[1].filename == missing
    assert isinstance(out[2], IsADirectoryError) and out[2].filename == str(sub)
    o, c = opens.settle()
    assert o == c > 0


def test_first_error_raised_when_several_fail(tmp_path, fds):
    missing = [str(tmp_path / ("nope%d" % i)) for i in range(5)]
    with pytest.raises(FileNotFoundError) as ei:
        read_many(missing, 1)
    assert ei.value.filename == missing[0]


def test_bad_arguments_raise_before_anything_runs(tmp_path, fds):
    with pytest.raises(TypeError):
        read_many([str(tmp_path), 3])
    with pytest.raises(ValueError, match="null"):
        read_many(["a\0b"])
    with pytest.raises(ValueError, match="depth"):
        read_many([], 0)
    with pytest.raises(ValueError, match="depth"):
        read_many([], 100000)
    with pytest.raises(ValueError, match="errors"):
        read_many([], errors="ignore")
    with pytest.raises(TypeError, match="progress"):
        read_many([], progress=3)
    with pytest.raises(TypeError):
        read_many(5)
    with pytest.raises(TypeError):
        read_many([], 4, "raise")      # errors is keyword-only


def test_progress_totals(tmp_path, fds):
    paths, datas = make_files(tmp_path, [100, 0, 3 * FIRST, 4096] * 10)
    calls = []
    out = read_many(paths, 4, progress=lambda *a: calls.append(a))
    assert out == datas
    assert calls, "progress was never called"
    assert calls[-1] == (sum(map(len, datas)), None, len(paths), len(paths))
    # monotonic, and the total never changes
    for (b0, n0, f0, t0), (b1, n1, f1, t1) in zip(calls, calls[1:]):
        assert f0 <= f1 and b0 <= b1 and t0 == t1 == len(paths) and n0 is n1 is None


def test_progress_that_raises_drains_and_closes(tmp_path, opens):
    paths, datas = make_files(tmp_path, [3 * FIRST] * 30)
    opens.reset()

    def progress(nbytes, btotal, files, total):
        raise KeyError("stop")

    with pytest.raises(KeyError):
        read_many(paths, 8, progress=progress)
    o, c = opens.settle()
    assert o == c > 0


def test_signal_interrupts_a_blocked_open(tmp_path, opens):
    # opening a FIFO for reading blocks (in io-wq) until a writer comes:
    # Ctrl-C must cancel it, and the call return with nothing left
    fifo = str(tmp_path / "fifo")
    os.mkfifo(fifo)
    paths, datas = make_files(tmp_path, [10] * 4)
    opens.reset()

    class Stop(Exception):
        pass

    def handler(signum, frame):
        raise Stop()

    old = signal.signal(signal.SIGALRM, handler)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.2)
        t0 = time.monotonic()
        with pytest.raises(Stop):
            read_many(paths + [fifo] + paths, 4)
        assert time.monotonic() - t0 < 5
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    o, c = opens.settle()
    assert o == c > 0


def test_progress_runs_while_nothing_completes(blocked_fifo, opens):
    # the wait is bounded (a round at least every 250 ms): a progress hook
    # that raises ends a call whose one open blocks, here in a thread where
    # no signal reaches it (the awaitable forms stop so, files_async.py).
    # Without the bound the call would wait for the writer that comes at 8 s.
    fifo = blocked_fifo
    opens.reset()
    calls = []

    def progress(*counts):
        calls.append(counts)
        if len(calls) == 3:
            raise KeyError("enough")

    out = []

    def run():
        t0 = time.monotonic()
        try:
            read_many([fifo], 1, progress=progress)
        except KeyError:
            out.append(time.monotonic() - t0)
    t = threading.Thread(target=run)
    t.start()
    t.join()
    assert out and out[0] < 5, (out, calls)
    assert calls[0] == (0, None, 0, 1)
    o, c = opens.settle()
    assert o == c


def test_fifo_with_a_writer_is_read_to_eof(tmp_path, fds):
    fifo = str(tmp_path / "fifo")
    os.mkfifo(fifo)
    payload = os.urandom(200000)

    def writer():
        with open(fifo, "wb") as f:
            for k in range(0, len(payload), 7000):
                f.write(payload[k:k + 7000])
                f.flush()

    t = threading.Thread(target=writer)
    t.start()
    try:
        assert read_many([fifo]) == [payload]
    finally:
        t.join()


def test_a_long_quiet_wait_is_kicked_and_counts_right(tmp_path, opens):
    # after a second with nothing in, the call hands io-wq a NOP of its
    # own (br_kick: a chain that never completed, seen rarely on 6.18).
    # Its completion is no file's: the FIFO, alone in slot 0 and blocked
    # in its open for 1.6 s, and the files after it still read right.
    # (The FIFO is in a folder of its own: inotify merges its reader's and
    # writer's opens into one event.)
    os.mkdir(str(tmp_path / "pipe"))
    fifo = str(tmp_path / "pipe" / "fifo")
    os.mkfifo(fifo)
    paths, datas = make_files(tmp_path, [10, 2 * FIRST + 5, 0])
    payload = os.urandom(3000)
    opens.reset()

    def writer():
        time.sleep(1.6)
        with open(fifo, "wb") as f:
            f.write(payload)

    t = threading.Thread(target=writer)
    t.start()
    try:
        t0 = time.monotonic()
        assert read_many([fifo] + paths, 1) == [payload] + datas
        assert time.monotonic() - t0 >= 1.5
    finally:
        t.join()
    o, c = opens.settle()
    assert o == c == 3


def test_read_files_uses_it_and_keeps_its_api(tmp_path, opens):
    paths, datas = make_files(tmp_path, [1, 2 * FIRST + 5, 0])
    opens.reset()
    calls = []
    assert read_files(paths, progress=lambda *a: calls.append(a)) == datas
    assert calls[-1] == (sum(map(len, datas)), None, 3, 3)
    with pytest.raises(FileNotFoundError) as ei:
        read_files([str(tmp_path / "x")])
    assert ei.value.filename == str(tmp_path / "x")
    with pytest.raises(ValueError):
        read_files(paths, depth=0)
    # the WorkQueue path gives the same totals
    calls = []
    with py_io_uring.IoUring(64) as ring:
        assert read_files(paths, ring=ring, progress=lambda *a: calls.append(a)) == datas
    assert calls[-1] == (sum(map(len, datas)), None, 3, 3)
    o, c = opens.settle()
    assert o == c > 0


def test_many_files_more_than_depth(tmp_path, opens):
    paths, datas = make_files(tmp_path, [i * 37 % 9000 for i in range(500)])
    opens.reset()
    assert read_many(paths, 16) == datas
    o, c = opens.settle()
    assert o == c == 500
